#include "ring_buffer.hpp"

#include <bpf/libbpf.h>

#include <array>
#include <cerrno>

#include "map_ops.hpp"

namespace sluice::maps {
namespace {

// What deliver_record returns when a bounded batch is full. libbpf 1.1's
// ringbuf_process_ring stops at a negative return of the callback, after
// moving the consumer position past that record (so it is consumed, not
// seen twice), and ring_buffer__consume returns the value. ECANCELED: no
// failure of libbpf's own reads uses it.
constexpr int batch_full = -ECANCELED;

template <class State>
int deliver_record(void* context, void* data, std::size_t size) {
  auto& state = *static_cast<State*>(context);
  state.on_record(std::span<const std::byte>(static_cast<const std::byte*>(data), size));
  ++state.delivered;
  if (state.batch_left != 0 && --state.batch_left == 0) return batch_full;
  return 0;
}

}  // namespace

Result<RingBuffer> RingBuffer::from(MapFd map, Callback on_record) {
  static constexpr std::array types{BPF_MAP_TYPE_RINGBUF};
  // A ring buffer has no keys or values: the kernel reports both sizes as 0.
  if (auto shape = detail::check_shape(map, "RingBuffer", types, 0, 0); !shape) return shape.error();
  if (!on_record) return make_error_because("open RingBuffer on", map.name(), "no record callback", EINVAL);
  auto state = std::make_unique<State>(State{std::move(map), std::move(on_record), nullptr});
  state->ring = ring_buffer__new(state->map.fd(), deliver_record<State>, state.get(), nullptr);
  if (!state->ring) return make_error("open RingBuffer on", state->map.name(), errno);
  return RingBuffer(std::move(state));
}

Result<RingBuffer> RingBuffer::open_pinned(const std::string& path, Callback on_record) {
  auto map = MapFd::open_pinned(path);
  if (!map) return map.error();
  return from(std::move(*map), std::move(on_record));
}

RingBuffer::RingBuffer(RingBuffer&& other) noexcept = default;

RingBuffer& RingBuffer::operator=(RingBuffer&& other) noexcept {
  if (this != &other) {
    reset();
    state_ = std::move(other.state_);
  }
  return *this;
}

RingBuffer::~RingBuffer() { reset(); }

void RingBuffer::reset() noexcept {
  if (state_ && state_->ring) ring_buffer__free(state_->ring);
  state_.reset();
}

Result<std::size_t> RingBuffer::consume() {
  state_->batch_left = 0;
  const int records = ring_buffer__consume(state_->ring);
  if (records < 0) return make_error("consume", state_->map.name(), -records);
  return static_cast<std::size_t>(records);
}

Result<std::size_t> RingBuffer::consume(std::size_t max_records) {
  if (max_records == 0) return make_error_because("consume", state_->map.name(), "a batch of 0 records", EINVAL);
  state_->batch_left = max_records;
  state_->delivered = 0;
  const int records = ring_buffer__consume(state_->ring);
  state_->batch_left = 0;
  if (records == batch_full) return state_->delivered;
  if (records < 0) return make_error("consume", state_->map.name(), -records);
  return static_cast<std::size_t>(records);
}

Result<std::size_t> RingBuffer::poll(int timeout_ms) {
  state_->batch_left = 0;
  const int records = ring_buffer__poll(state_->ring, timeout_ms);
  if (records == -EINTR) return std::size_t{0};  // a signal is not a failure of the ring
  if (records < 0) return make_error("poll", state_->map.name(), -records);
  return static_cast<std::size_t>(records);
}

int RingBuffer::epoll_fd() const { return ring_buffer__epoll_fd(state_->ring); }

}  // namespace sluice::maps
