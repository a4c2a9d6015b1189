#include "event_hub.hpp"

#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cstring>

#include "names.hpp"
#include "spdlog/spdlog.h"

namespace sluice::daemon {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

std::string hex(std::span<const std::uint8_t> bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (auto byte : bytes) {
    out += digits[byte >> 4];
    out += digits[byte & 0xf];
  }
  return out;
}

}  // namespace

std::optional<json::object> drop_event_to_json(std::span<const std::byte> record) {
  sluice_drop_event event{};
  if (record.size() != sizeof event) return std::nullopt;
  std::memcpy(&event, record.data(), sizeof event);
  const std::size_t cap = std::min<std::size_t>(event.cap_len, SLUICE_EVENT_HEAD_BYTES);
  return json::object{
      {"timestamp_ns", event.timestamp_ns},
      {"ifindex", event.ifindex},
      {"reason", dataplane::reason_name(static_cast<sluice_reason>(event.reason))},
      {"verdict", dataplane::verdict_name(static_cast<sluice_verdict>(event.verdict))},
      {"pkt_len", event.pkt_len},
      {"head_hex", hex({event.head, cap})},
  };
}

EventSubscription::EventSubscription(asio::any_io_executor executor, std::size_t capacity)
    : capacity_(capacity), wake_(std::move(executor), asio::steady_timer::time_point::max()) {}

void EventSubscription::push(const json::object& event) {
  if (queue_.size() >= capacity_) {
    ++dropped_;
    return;
  }
  queue_.push_back(event);
  wake_.cancel();
}

asio::awaitable<void> EventSubscription::wait() {
  if (!queue_.empty()) co_return;
  wake_.expires_at(asio::steady_timer::time_point::max());
  co_await wake_.async_wait(use_tuple);  // cancelled by push(): that is the wake-up
}

maps::Result<void> EventHub::start(maps::MapFd ring_map) {
  auto ring = maps::RingBuffer::from(std::move(ring_map), [this](std::span<const std::byte> record) { publish(record); });
  if (!ring) return ring.error();
  // The descriptor owns what it holds: give it a dup, the RingBuffer keeps its own.
  const int fd = ::dup(ring->epoll_fd());
  if (fd < 0) return maps::make_error("dup epoll fd of", "drop_events", errno);
  ring_.emplace(std::move(*ring));
  ready_ = std::make_unique<asio::posix::stream_descriptor>(io_, fd);
  asio::co_spawn(io_, read_loop(), asio::detached);
  return {};
}

void EventHub::stop() {
  if (ready_) {
    boost::system::error_code ignored;
    ready_->close(ignored);
  }
}

asio::awaitable<void> EventHub::read_loop() {
  // Both the descriptor and this hub outlive the loop: stop() ends it.
  while (ready_ && ready_->is_open()) {
    auto [ec] = co_await ready_->async_wait(asio::posix::descriptor_base::wait_read, use_tuple);
    if (ec) co_return;
    // A bounded batch per turn: under a flood (drop_sample_every 1) the
    // ring refills as fast as it is read, and reading it to the end would
    // hold the io_context away from the control socket and /metrics.
    for (;;) {
      auto consumed = ring_->consume(events_per_turn);
      if (!consumed) {
        ++stats_.read_errors;
        spdlog::warn("drop events: {}", consumed.error().message);
        break;
      }
      if (*consumed < events_per_turn) break;  // drained: the kernel signals the next record
      // Full batch, more waiting. The kernel does not signal again before the
      // ring was drained, so go on ourselves, after everything else ready ran.
      co_await asio::post(io_, asio::use_awaitable);
      if (!ready_ || !ready_->is_open()) co_return;
    }
  }
}

void EventHub::publish(std::span<const std::byte> record) {
  auto event = drop_event_to_json(record);
  if (!event) {
    ++stats_.malformed;
    return;
  }
  ++stats_.received;
  publish_event(*event);
}

void EventHub::publish_event(const json::object& event) {
  history_.push_back(event);
  if (history_.size() > history_capacity) history_.pop_front();
  std::erase_if(subscribers_, [](const auto& weak) { return weak.expired(); });
  for (const auto& weak : subscribers_) {
    if (auto subscriber = weak.lock()) {
      const auto before = subscriber->dropped();
      subscriber->push(event);
      stats_.subscriber_dropped += subscriber->dropped() - before;
    }
  }
}

std::shared_ptr<EventSubscription> EventHub::subscribe() {
  auto subscription = std::make_shared<EventSubscription>(io_.get_executor(), subscriber_capacity);
  subscribers_.push_back(subscription);
  return subscription;
}

std::vector<json::object> EventHub::recent(std::size_t max) const {
  const std::size_t count = std::min(max, history_.size());
  return {history_.end() - static_cast<std::ptrdiff_t>(count), history_.end()};
}

}  // namespace sluice::daemon
