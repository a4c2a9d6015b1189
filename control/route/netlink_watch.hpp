#pragma once
// NetlinkWatch: drives a NeighbourTable or KernelMirror from sluiced's one
// boost::asio io_context. It waits for fd() to be readable and calls
// process() (their process_pending()) each time, on the io_context's thread,
// so RouteTable keeps its one writer. The fd stays the watched object's:
// the descriptor is released, never closed, on destruction.
//
// Errors from process() go to on_error and the watch goes on (a later
// notification or resync may heal them); it stops when destroyed.
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <functional>
#include <memory>
#include <string>

#include "route_table.hpp"

namespace sluice::route {

class NetlinkWatch {
 public:
  NetlinkWatch(boost::asio::io_context& io, int fd, std::function<Result<void>()> process,
               std::function<void(const Error&)> on_error)
      : state_(std::make_shared<State>(io, fd, std::move(process), std::move(on_error))) {
    arm(state_);
  }
  NetlinkWatch(const NetlinkWatch&) = delete;
  NetlinkWatch& operator=(const NetlinkWatch&) = delete;
  ~NetlinkWatch() {
    state_->stopped = true;
    boost::system::error_code ignored;
    state_->descriptor.cancel(ignored);
    (void)state_->descriptor.release();  // the fd belongs to the netlink object
  }

 private:
  struct State {
    State(boost::asio::io_context& io, int fd, std::function<Result<void>()> p, std::function<void(const Error&)> e)
        : descriptor(io, fd), process(std::move(p)), on_error(std::move(e)) {}
    boost::asio::posix::stream_descriptor descriptor;
    std::function<Result<void>()> process;
    std::function<void(const Error&)> on_error;
    bool stopped = false;
  };

  // The handler holds the state, so a wait completing after destruction finds it stopped.
  static void arm(const std::shared_ptr<State>& state) {
    state->descriptor.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                                 [state](const boost::system::error_code& error) {
                                   if (state->stopped || error) return;
                                   if (auto done = state->process(); !done && state->on_error) state->on_error(done.error());
                                   arm(state);
                                 });
  }

  std::shared_ptr<State> state_;
};

}  // namespace sluice::route
