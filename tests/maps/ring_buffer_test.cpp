#include "ring_buffer.hpp"

#include <gtest/gtest.h>
#include <sys/epoll.h>

#include "contract.hpp"
#include "privileges.hpp"

namespace sluice::maps {
namespace {

Result<MapFd> make_ring(const char* name) {
  return MapFd::create(BPF_MAP_TYPE_RINGBUF, name, 0, 0, SLUICE_DROP_EVENTS_BYTES);
}

TEST(RingBuffer, EmptyRingConsumesNothing) {
  SLUICE_REQUIRE_PRIVILEGES();
  auto map = make_ring("drop_events");
  ASSERT_TRUE(map) << map.error().message;
  std::size_t records = 0;
  auto ring = RingBuffer::from(std::move(*map), [&](std::span<const std::byte>) { ++records; });
  ASSERT_TRUE(ring) << ring.error().message;
  EXPECT_EQ(ring->map().name(), "drop_events");
  EXPECT_EQ(ring->consume().value(), 0u);
  EXPECT_EQ(ring->poll(0).value(), 0u);
  EXPECT_EQ(records, 0u);

  // epoll_fd() is a real epoll instance an event loop can wait on.
  const int epoll = ring->epoll_fd();
  ASSERT_GE(epoll, 0);
  epoll_event event{};
  EXPECT_EQ(epoll_wait(epoll, &event, 1, 0), 0);

  RingBuffer moved = std::move(*ring);
  EXPECT_EQ(moved.consume().value(), 0u);
  EXPECT_EQ(moved.epoll_fd(), epoll);
  static_assert(!std::is_copy_constructible_v<RingBuffer>);
}

TEST(RingBuffer, RejectsOtherMapsAndMissingCallback) {
  SLUICE_REQUIRE_PRIVILEGES();
  auto hash = MapFd::create(BPF_MAP_TYPE_HASH, "not_a_ring", 4, 4, 1);
  ASSERT_TRUE(hash);
  auto from_hash = RingBuffer::from(std::move(*hash), [](std::span<const std::byte>) {});
  ASSERT_FALSE(from_hash);
  EXPECT_NE(from_hash.error().message.find("expected ringbuf"), std::string::npos) << from_hash.error().message;

  auto ring_map = make_ring("no_callback");
  ASSERT_TRUE(ring_map);
  auto without_callback = RingBuffer::from(std::move(*ring_map), nullptr);
  ASSERT_FALSE(without_callback);
  EXPECT_EQ(without_callback.error().errnum, EINVAL);
}

}  // namespace
}  // namespace sluice::maps
