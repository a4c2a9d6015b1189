#pragma once
// NetlinkWatch: drives a NeighbourTable or KernelMirror from sluiced's one
// boost::asio io_context. It waits for fd() to be readable and calls
// process() (their process_pending()) each time, on the io_context's thread,
// so RouteTable keeps its one writer. The fd stays the watched object's:
// the descriptor is released, never closed, on destruction.
//
// Errors from process() go to on_error and the watch goes on (a later
// notification or resync may heal them); it stops when destroyed. With a
// `deadline` (KernelMirror::next_deadline), process() also runs when that
// time comes without the fd becoming readable: work the object spaced out.
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <memory>
#include <string>

#include "route_table.hpp"

namespace sluice::route {

class NetlinkWatch {
 public:
  using Deadline = std::function<std::optional<std::chrono::steady_clock::time_point>()>;

  NetlinkWatch(boost::asio::io_context& io, int fd, std::function<Result<void>()> process,
               std::function<void(const Error&)> on_error, Deadline deadline = {})
      : state_(std::make_shared<State>(io, fd, std::move(process), std::move(on_error), std::move(deadline))) {
    arm(state_);
    arm_timer(state_);
  }
  NetlinkWatch(const NetlinkWatch&) = delete;
  NetlinkWatch& operator=(const NetlinkWatch&) = delete;
  ~NetlinkWatch() {
    state_->stopped = true;
    boost::system::error_code ignored;
    state_->descriptor.cancel(ignored);
    state_->timer.cancel();
    (void)state_->descriptor.release();  // the fd belongs to the netlink object
  }

 private:
  struct State {
    State(boost::asio::io_context& io, int fd, std::function<Result<void>()> p, std::function<void(const Error&)> e,
          Deadline d)
        : descriptor(io, fd), timer(io), process(std::move(p)), on_error(std::move(e)), deadline(std::move(d)) {}
    boost::asio::posix::stream_descriptor descriptor;
    boost::asio::steady_timer timer;
    std::function<Result<void>()> process;
    std::function<void(const Error&)> on_error;
    Deadline deadline;
    std::optional<std::chrono::steady_clock::time_point> timer_at{};  // what the timer waits for
    bool stopped = false;
  };

  static void run(const std::shared_ptr<State>& state) {
    if (auto done = state->process(); !done && state->on_error) state->on_error(done.error());
    arm_timer(state);
  }

  // Re-aimed after every process(): the object's deadline may have moved.
  static void arm_timer(const std::shared_ptr<State>& state) {
    if (!state->deadline || state->stopped) return;
    const auto when = state->deadline();
    if (when == state->timer_at) return;
    state->timer_at = when;
    state->timer.cancel();
    if (!when) return;
    state->timer.expires_at(*when);
    state->timer.async_wait([state, when](const boost::system::error_code& error) {
      if (state->stopped || error || state->timer_at != when) return;
      state->timer_at.reset();
      run(state);
    });
  }

  // The handler holds the state, so a wait completing after destruction finds it stopped.
  static void arm(const std::shared_ptr<State>& state) {
    state->descriptor.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                                 [state](const boost::system::error_code& error) {
                                   if (state->stopped || error) return;
                                   run(state);
                                   arm(state);
                                 });
  }

  std::shared_ptr<State> state_;
};

}  // namespace sluice::route
