#include "program_maps.hpp"

#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <net/if.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "contract.hpp"
#include "map_ops.hpp"
#include "map_test_support.hpp"
#include "privileges.hpp"

namespace sluice::maps {
namespace {

using test::TrivialXdpProgram;

constexpr std::uint32_t kDevSlots = 8;
constexpr std::uint32_t kCpuQueueSize = 192;

std::uint32_t loopback_ifindex() { return if_nametoindex("lo"); }

TEST(ProgArray, SetLookupClear) {
  SLUICE_REQUIRE_PRIVILEGES();
  TrivialXdpProgram stage;
  ASSERT_GE(stage.fd(), 0) << "cannot load a trivial XDP program";
  auto created = MapFd::create(BPF_MAP_TYPE_PROG_ARRAY, "stages", 4, 4, SLUICE_STAGE_COUNT);
  ASSERT_TRUE(created) << created.error().message;
  auto stages = ProgArray::from(std::move(*created));
  ASSERT_TRUE(stages) << stages.error().message;

  EXPECT_EQ(stages->lookup(SLUICE_STAGE_LB).value(), std::nullopt);
  ASSERT_TRUE(stages->set(SLUICE_STAGE_LB, stage.fd()));
  EXPECT_EQ(stages->lookup(SLUICE_STAGE_LB).value(), std::optional<std::uint32_t>{stage.id()});
  EXPECT_TRUE(stages->clear(SLUICE_STAGE_LB).value());
  EXPECT_FALSE(stages->clear(SLUICE_STAGE_LB).value());
  EXPECT_EQ(stages->lookup(SLUICE_STAGE_LB).value(), std::nullopt);

  auto past_end = stages->set(SLUICE_STAGE_COUNT, stage.fd());
  ASSERT_FALSE(past_end);
  EXPECT_NE(past_end.error().message.find("stages"), std::string::npos);
  auto bad_fd = stages->set(SLUICE_STAGE_FILTER, -1);
  ASSERT_FALSE(bad_fd);
  EXPECT_EQ(bad_fd.error().errnum, EBADF);
}

TEST(ProgArray, FromRejectsOtherTypes) {
  SLUICE_REQUIRE_PRIVILEGES();
  auto array = MapFd::create(BPF_MAP_TYPE_ARRAY, "plain_array", 4, 4, 1);
  ASSERT_TRUE(array);
  auto stages = ProgArray::from(std::move(*array));
  ASSERT_FALSE(stages);
  EXPECT_NE(stages.error().message.find("expected prog_array"), std::string::npos) << stages.error().message;
}

TEST(DevMap, IfindexAndProgram) {
  SLUICE_REQUIRE_PRIVILEGES();
  auto created = MapFd::create(BPF_MAP_TYPE_DEVMAP, "tx_ports", 4, sizeof(bpf_devmap_val), kDevSlots);
  ASSERT_TRUE(created) << created.error().message;
  auto ports = DevMap::from(std::move(*created));
  ASSERT_TRUE(ports) << ports.error().message;
  const std::uint32_t lo = loopback_ifindex();
  ASSERT_NE(lo, 0u);

  ASSERT_TRUE(ports->set(0, lo));
  auto plain = ports->lookup(0).value();
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->ifindex, lo);
  EXPECT_EQ(plain->prog_id, 0u);

  TrivialXdpProgram egress(BPF_XDP_DEVMAP);
  ASSERT_GE(egress.fd(), 0);
  ASSERT_TRUE(ports->set(1, lo, egress.fd()));
  auto with_prog = ports->lookup(1).value();
  ASSERT_TRUE(with_prog);
  EXPECT_EQ(with_prog->prog_id, egress.id());

  EXPECT_TRUE(ports->erase(1).value());
  EXPECT_EQ(ports->lookup(1).value(), std::nullopt);
  EXPECT_EQ(ports->keys().value().size(), kDevSlots);  // DEVMAP walks indexes, like an array
}

TEST(DevMap, HashWithBareIfindexValue) {
  SLUICE_REQUIRE_PRIVILEGES();
  auto created = MapFd::create(BPF_MAP_TYPE_DEVMAP_HASH, "tx_hash", 4, 4, kDevSlots);
  ASSERT_TRUE(created) << created.error().message;
  auto ports = DevMap::from(std::move(*created));
  ASSERT_TRUE(ports) << ports.error().message;
  const std::uint32_t lo = loopback_ifindex();
  constexpr std::uint32_t kPortKey = 4242;
  ASSERT_TRUE(ports->set(kPortKey, lo, std::nullopt, UpdateFlag::NoExist));
  auto again = ports->set(kPortKey, lo, std::nullopt, UpdateFlag::NoExist);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().errnum, EEXIST);
  EXPECT_EQ(ports->lookup(kPortKey).value().value().ifindex, lo);
  EXPECT_EQ(ports->keys().value(), std::vector<std::uint32_t>{kPortKey});

  TrivialXdpProgram egress(BPF_XDP_DEVMAP);
  auto no_prog_field = ports->set(1, lo, egress.fd());
  ASSERT_FALSE(no_prog_field);
  EXPECT_EQ(no_prog_field.error().errnum, EINVAL);
  EXPECT_NE(no_prog_field.error().message.find("no program field"), std::string::npos);
}

TEST(CpuMap, QueueSizeAndProgram) {
  SLUICE_REQUIRE_PRIVILEGES();
  auto created = MapFd::create(BPF_MAP_TYPE_CPUMAP, "cpus", 4, sizeof(bpf_cpumap_val), 1);
  ASSERT_TRUE(created) << created.error().message;
  auto cpus = CpuMap::from(std::move(*created));
  ASSERT_TRUE(cpus) << cpus.error().message;
  EXPECT_EQ(cpus->lookup(0).value(), std::nullopt);
  ASSERT_TRUE(cpus->set(0, kCpuQueueSize));
  auto entry = cpus->lookup(0).value();
  ASSERT_TRUE(entry);
  EXPECT_EQ(entry->qsize, kCpuQueueSize);
  EXPECT_EQ(entry->prog_id, 0u);

  TrivialXdpProgram on_cpu(BPF_XDP_CPUMAP);
  ASSERT_GE(on_cpu.fd(), 0);
  ASSERT_TRUE(cpus->set(0, kCpuQueueSize, on_cpu.fd()));
  EXPECT_EQ(cpus->lookup(0).value().value().prog_id, on_cpu.id());

  EXPECT_TRUE(cpus->erase(0).value());
  EXPECT_EQ(cpus->lookup(0).value(), std::nullopt);
  EXPECT_FALSE(cpus->set(1, kCpuQueueSize));  // beyond max_entries
}

// DEVMAP_HASH has no batch ops (the kernel answers ENOTSUPP before touching
// an element): the shared batch code must fall back to element operations.
TEST(BatchFallback, MapTypeWithoutBatchOpsGoesElementByElement) {
  SLUICE_REQUIRE_PRIVILEGES();
  constexpr std::uint32_t kElements = 6;
  auto map = MapFd::create(BPF_MAP_TYPE_DEVMAP_HASH, "no_batch", 4, 4, kDevSlots);
  ASSERT_TRUE(map) << map.error().message;
  const std::uint32_t lo = loopback_ifindex();
  std::array<std::uint32_t, kElements> keys{};
  std::array<std::uint32_t, kElements> ifindexes{};
  for (std::uint32_t i = 0; i < kElements; ++i) {
    keys[i] = 100 + i;
    ifindexes[i] = lo;
  }
  auto written = detail::update_batch_bytes(*map, reinterpret_cast<const std::byte*>(keys.data()),
                                            reinterpret_cast<const std::byte*>(ifindexes.data()), kElements,
                                            sizeof(std::uint32_t), UpdateFlag::Any);
  ASSERT_TRUE(written) << written.error().message;
  EXPECT_EQ(*written, kElements);

  std::vector<std::byte> key_bytes, value_bytes;
  ASSERT_TRUE(detail::lookup_all_bytes(*map, sizeof(std::uint32_t), key_bytes, value_bytes));
  ASSERT_EQ(key_bytes.size(), kElements * sizeof(std::uint32_t));
  std::vector<std::uint32_t> dumped(kElements);
  std::memcpy(dumped.data(), key_bytes.data(), key_bytes.size());
  std::sort(dumped.begin(), dumped.end());
  EXPECT_TRUE(std::equal(dumped.begin(), dumped.end(), keys.begin()));

  // A bad element in the fallback loop: done counts the ones before it.
  std::array<std::uint32_t, 3> more_keys{200, 201, 202};
  std::array<std::uint32_t, 3> more_ifindexes{lo, 0, lo};  // ifindex 0: no such device
  auto partial = detail::update_batch_bytes(*map, reinterpret_cast<const std::byte*>(more_keys.data()),
                                            reinterpret_cast<const std::byte*>(more_ifindexes.data()),
                                            more_keys.size(), sizeof(std::uint32_t), UpdateFlag::Any);
  ASSERT_FALSE(partial);
  EXPECT_EQ(partial.error().done, 1u);
  EXPECT_NE(partial.error().message.find("after 1 of 3 elements"), std::string::npos) << partial.error().message;

  auto erased = detail::erase_batch_bytes(*map, reinterpret_cast<const std::byte*>(keys.data()), kElements, true);
  ASSERT_TRUE(erased) << erased.error().message;
  EXPECT_EQ(*erased, kElements);
}

}  // namespace
}  // namespace sluice::maps
