#pragma once
// The control socket: a Unix stream socket speaking the protocol of
// control/protocol. One coroutine per connection on the daemon's single
// io_context; every write is bounded by a timeout and every event stream by a
// per-subscriber queue, so a slow or dead client only ever stalls itself.
#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "event_hub.hpp"
#include "ops.hpp"
#include "service.hpp"
#include "system.hpp"

namespace sluice::daemon {

// The ops this daemon implements. An op of the protocol without a handler
// here answers unknown_op: ops appear when their subsystem exists.
class OpRegistry {
 public:
  struct Handler {
    std::function<OpResult(const boost::json::object& args)> run;
    // Runs after the reply was written (shutdown stops the daemon there).
    std::function<void()> after_reply;
  };

  void add(std::string name, Handler handler);
  const Handler* find(std::string_view name) const;
  std::vector<std::string> names() const;

 private:
  std::map<std::string, Handler, std::less<>> handlers_;
};

// Control-socket requests by op and result, for /metrics.
struct RequestMetrics {
  // (op, result): op is a known op name, "unknown" or "invalid" (never
  // client text: a label per typo would grow without bound); result is "ok"
  // or an error code.
  std::map<std::pair<std::string, std::string>, std::uint64_t> requests;
  std::uint64_t connections_total = 0;
  std::uint64_t connections_open = 0;
  std::uint64_t connections_refused = 0;  // over max_connections
  std::uint64_t write_timeouts = 0;
  std::uint64_t stream_input_overflows = 0;  // cut off for sending over max_stream_input_bytes mid-stream
};

struct ServerOptions {
  std::string socket_path;
  std::optional<gid_t> socket_group;  // group owner of the socket (may connect: read-only ops)
  Authorizer authorizer;
};

inline constexpr mode_t socket_mode = 0660;
// A reply not taken by the client within this time ends its connection.
inline constexpr std::chrono::seconds reply_write_timeout{5};
inline constexpr std::size_t max_connections = 256;
// What a client may send while its events stream runs (kept for after the
// stream): one request line's worth and its newline. More ends the connection.
inline constexpr std::size_t max_stream_input_bytes = protocol::max_request_bytes + 1;

class ControlServer {
 public:
  ControlServer(boost::asio::io_context& io, ServerOptions options, const OpRegistry& ops, EventHub& events);
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;
  ~ControlServer();

  // Creates the parent directory, removes a stale socket file (refusing if a
  // live daemon answers on it, or if the path is not a socket), binds with
  // mode 0660 and the socket group.
  Result<void> listen();
  void start();
  // Stops accepting and closes the socket file; open connections end with the io_context.
  void stop();

  const RequestMetrics& metrics() const;

  struct State;  // shared with each connection's coroutine (outlives this object if need be)

 private:
  std::shared_ptr<State> state_;
};

}  // namespace sluice::daemon
