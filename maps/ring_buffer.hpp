#pragma once
// RingBuffer: the user-space consumer of a BPF_MAP_TYPE_RINGBUF map (drop
// events). The owner waits on epoll_fd() (e.g. with an Asio
// posix::stream_descriptor) and calls consume() when it becomes readable.
#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "error.hpp"
#include "map_fd.hpp"

struct ring_buffer;

namespace sluice::maps {

class RingBuffer {
 public:
  // Called once per record; the span is valid only during the call.
  using Callback = std::function<void(std::span<const std::byte> record)>;

  [[nodiscard]] static Result<RingBuffer> from(MapFd map, Callback on_record);
  [[nodiscard]] static Result<RingBuffer> open_pinned(const std::string& path, Callback on_record);

  RingBuffer(RingBuffer&&) noexcept;
  RingBuffer& operator=(RingBuffer&&) noexcept;
  RingBuffer(const RingBuffer&) = delete;
  RingBuffer& operator=(const RingBuffer&) = delete;
  ~RingBuffer();

  // Handles every record available now without blocking; returns how many.
  [[nodiscard]] Result<std::size_t> consume();
  // Handles at most max_records (at least 1) of them; returns how many. A
  // return of max_records means more may be waiting: call again (the kernel
  // signals epoll_fd() again only once the ring was drained). A consumer
  // sharing a thread with other work calls this so a flood of records
  // cannot hold the thread (ring_buffer__consume reads until the ring is
  // empty, however fast the producer refills it).
  [[nodiscard]] Result<std::size_t> consume(std::size_t max_records);
  // Waits up to timeout_ms (-1: forever) for records, then handles them.
  [[nodiscard]] Result<std::size_t> poll(int timeout_ms);
  // Readable when records are waiting.
  int epoll_fd() const;

  const MapFd& map() const noexcept { return state_->map; }

 private:
  // Heap-allocated so the address libbpf keeps as callback context survives moves.
  struct State {
    MapFd map;
    Callback on_record;
    ring_buffer* ring = nullptr;
    // consume(max): records left in this batch; 0 means unbounded (consume()).
    std::size_t batch_left = 0;
    std::size_t delivered = 0;
  };
  explicit RingBuffer(std::unique_ptr<State> state) noexcept : state_(std::move(state)) {}
  void reset() noexcept;

  std::unique_ptr<State> state_;
};

}  // namespace sluice::maps
