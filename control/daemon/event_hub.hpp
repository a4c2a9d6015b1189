#pragma once
// Drop events from the data plane's `drop_events` ring buffer, fanned out to
// every `events` subscriber. Each subscriber has a bounded queue: a client
// that reads slowly loses its own oldest-undelivered events (counted), it
// never slows the ring buffer or another client.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>

#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <vector>

#include "maps.hpp"
#include "sluice_maps.h"

namespace sluice::daemon {

// {"timestamp_ns","ifindex","reason","verdict","pkt_len","head_hex"}; a record
// of the wrong size yields nothing (the kernel side is ours, but a mismatched
// build must not make us read past the record).
std::optional<boost::json::object> drop_event_to_json(std::span<const std::byte> record);

class EventSubscription {
 public:
  EventSubscription(boost::asio::any_io_executor executor, std::size_t capacity);
  // Events in arrival order; the holder pops them.
  std::deque<boost::json::object>& queue() noexcept { return queue_; }
  std::uint64_t dropped() const noexcept { return dropped_; }
  // Suspends until push() (or until the subscription ends); returns at once if events are queued.
  boost::asio::awaitable<void> wait();

  void push(const boost::json::object& event);

 private:
  std::size_t capacity_;
  std::deque<boost::json::object> queue_;
  std::uint64_t dropped_ = 0;
  boost::asio::steady_timer wake_;
};

struct EventStats {
  std::uint64_t received = 0;            // records read from the ring buffer
  std::uint64_t malformed = 0;           // records of the wrong size
  std::uint64_t subscriber_dropped = 0;  // queue overflows over all subscribers
  std::uint64_t read_errors = 0;         // failed ring buffer reads
};

class EventHub {
 public:
  // Recent events kept for `events` without follow.
  static constexpr std::size_t history_capacity = 256;
  // Per-subscriber queue bound: ~1000 events of ~400 bytes of JSON each.
  static constexpr std::size_t subscriber_capacity = 1024;
  // Ring buffer records handled per turn of the io_context (see read_loop).
  static constexpr std::size_t events_per_turn = 128;

  explicit EventHub(boost::asio::io_context& io) : io_(io) {}

  // Starts consuming the ring buffer (dup of its epoll fd in an Asio descriptor).
  maps::Result<void> start(maps::MapFd ring_map);
  void stop();

  std::shared_ptr<EventSubscription> subscribe();
  std::vector<boost::json::object> recent(std::size_t max) const;
  // Publishes one raw record (the ring buffer callback; also used by tests).
  void publish(std::span<const std::byte> record);
  // Publishes an event of the daemon's own (the balancer's health changes:
  // {"type":"lb_health",...}), kept and fanned out as drop events are.
  void publish_event(const boost::json::object& event);
  const EventStats& stats() const noexcept { return stats_; }

 private:
  boost::asio::awaitable<void> read_loop();

  boost::asio::io_context& io_;
  std::optional<maps::RingBuffer> ring_;
  std::unique_ptr<boost::asio::posix::stream_descriptor> ready_;
  std::vector<std::weak_ptr<EventSubscription>> subscribers_;
  std::deque<boost::json::object> history_;
  EventStats stats_;
};

}  // namespace sluice::daemon
