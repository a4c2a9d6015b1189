#pragma once
// The control socket: a Unix stream socket speaking the protocol of
// control/protocol. One coroutine per connection on the daemon's single
// io_context; every write is bounded by a timeout and every event stream by a
// per-subscriber queue, so a slow or dead client only ever stalls itself.
#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/json.hpp>

#include <array>
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
  std::uint64_t connections_refused = 0;  // over max_connections (all refusals below included)
  std::uint64_t connections_refused_reserved = 0;  // only reserved slots left, and the peer is not admin
  std::uint64_t connections_refused_per_uid = 0;   // the peer's uid holds max_per_uid connections
  std::uint64_t idle_timeouts = 0;          // closed: no complete request within idle_timeout
  std::uint64_t partial_line_timeouts = 0;  // closed: a started line not finished within partial_line_timeout
  std::uint64_t write_timeouts = 0;
  std::uint64_t stream_input_overflows = 0;  // cut off for sending over max_stream_input_bytes mid-stream
};

// How many clients may hold the single io_context, and for how long: a
// connection is one coroutine and up to one request line (1 MiB) of buffer,
// so without bounds 256 idle clients locked out everyone, root included, and
// 250 partial lines pinned 250 MiB. sluiced's options set these
// (--max-connections ...); validate() says what is wrong with a set.
struct ConnectionLimits {
  std::size_t max_connections = 256;  // open at once, everyone together
  // Of max_connections, this many only uid 0 and the admin group may take:
  // a flood from socket-group members cannot lock the administrator out.
  std::size_t admin_reserved = 16;
  // Open at once per uid (root exempt): one user cannot take all the others' slots.
  std::size_t max_per_uid = 32;
  // A connection that completes no request for this long is closed (an
  // events stream in progress is not idle: it is a reply being sent).
  std::chrono::milliseconds idle_timeout{60'000};
  // A request line must be complete this long after its first byte arrived.
  std::chrono::milliseconds partial_line_timeout{10'000};
  bool operator==(const ConnectionLimits&) const = default;
};
// Bounds of the options (also their error texts).
inline constexpr std::size_t max_connections_limit = 4096;  // each is a file descriptor
inline constexpr std::chrono::milliseconds min_timeout{100};
inline constexpr std::chrono::milliseconds max_timeout{24 * 3600 * 1000};
// Names the option and the value that is wrong.
Result<void> validate(const ConnectionLimits& limits);
// sluiced's options of the limits, and the one that sets each from its text.
inline constexpr std::array<std::string_view, 5> connection_limit_options{
    "--max-connections", "--admin-reserved-connections", "--max-connections-per-uid", "--idle-timeout-ms",
    "--partial-line-timeout-ms"};
// The value of one of connection_limit_options (a decimal integer,
// maps/decimal.hpp) set into limits; the error names the option and the
// value. validate() then checks the limits together.
Result<void> set_connection_limit(ConnectionLimits& limits, std::string_view option, std::string_view text);
// The --help text of one of connection_limit_options, with its default.
std::string connection_limit_help(std::string_view option);

struct ServerOptions {
  std::string socket_path;
  std::optional<gid_t> socket_group;  // group owner of the socket (may connect: read-only ops)
  Authorizer authorizer;
  ConnectionLimits limits;
};

inline constexpr mode_t socket_mode = 0660;
// A reply not taken by the client within this time ends its connection.
inline constexpr std::chrono::seconds reply_write_timeout{5};
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
